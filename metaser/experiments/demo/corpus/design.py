"""What the demo corpus consists of: 10 speakers in 5 sessions, 20 dialogs, the sentences, labels.

Everything here is fixed data; :mod:`metaser.experiments.demo.corpus.plan` decides which turn says what.
"""

from __future__ import annotations

from dataclasses import dataclass

from metaser.experiments.demo.corpus.espeak import VoiceSpec

__all__ = [
    "TARGET_LABELS",
    "NON_TARGET_CYCLE",
    "SpeakerVoice",
    "SPEAKERS",
    "DIALOGS",
    "SCRIPT_LINES",
    "IMPRO_LINES",
    "UNLABELLED_TEXTS",
    "CATEGORY",
    "XXX_CATEGORIES",
]

TARGET_LABELS = ("neu", "hap", "ang", "sad")
NON_TARGET_CYCLE = ("fru", "xxx", "sur")


@dataclass(frozen=True)
class SpeakerVoice:
    """One of the 10 fixed speakers: ``Ses0<n><F|M>`` and how its voice is made."""

    session: int
    gender: str  # "F" | "M"
    variant: str  # eSpeak NG variant (voices/!v)
    pitch_offset: int  # added to eSpeak's base pitch
    rate_factor: float  # multiplies the words per minute
    formant_scale: float

    @property
    def speaker(self) -> str:
        return f"Ses{self.session:02d}{self.gender}"

    @property
    def voice_name(self) -> str:
        return f"metaser_ses{self.session:02d}{self.gender.lower()}"

    def spec(self) -> VoiceSpec:
        return VoiceSpec(
            self.voice_name,
            variant=self.variant,
            formant_scale=self.formant_scale,
            gender="female" if self.gender == "F" else "male",
        )


SPEAKERS: dict[str, SpeakerVoice] = {
    v.speaker: v
    for v in (
        SpeakerVoice(1, "F", "f1", 0, 1.00, 1.00),
        SpeakerVoice(1, "M", "m1", 0, 1.00, 1.00),
        SpeakerVoice(2, "F", "f2", -4, 1.06, 0.97),
        SpeakerVoice(2, "M", "m2", 5, 0.95, 1.03),
        SpeakerVoice(3, "F", "f3", 4, 0.94, 1.02),
        SpeakerVoice(3, "M", "m3", -5, 1.05, 0.97),
        SpeakerVoice(4, "F", "f4", -2, 1.08, 1.04),
        SpeakerVoice(4, "M", "m4", 3, 0.92, 0.98),
        SpeakerVoice(5, "F", "f5", 6, 0.97, 0.96),
        SpeakerVoice(5, "M", "m6", -3, 1.03, 1.02),
    )
}

# 4 dialogs per session; the 'a'/'b' and '_1b' ids are traps of the real corpus.
DIALOGS: dict[int, tuple[str, ...]] = {
    1: ("Ses01F_impro01", "Ses01M_impro02", "Ses01F_script01_1", "Ses01M_script02_1"),
    2: ("Ses02M_impro01", "Ses02F_impro03", "Ses02M_script01_2", "Ses02F_script02_2"),
    3: ("Ses03M_impro05a", "Ses03M_impro05b", "Ses03F_script01_1", "Ses03M_script02_2"),
    4: ("Ses04F_impro04", "Ses04M_impro06", "Ses04F_script02_1", "Ses04M_script01_2"),
    5: ("Ses05F_impro02", "Ses05M_impro07", "Ses05M_script01_1b", "Ses05F_script02_1"),
}

# Scripts are the same in every session (as in IEMOCAP); part _1 / _1b speak lines 0-5 first,
# part _2 lines 6-11 first.
SCRIPT_LINES: dict[str, tuple[str, ...]] = {
    "script01": (
        "Excuse me, is this the right line?",
        "I have been waiting here all morning.",
        "You need to fill out this form first.",
        "Nobody told me about any form.",
        "It is printed on the sign by the door.",
        "Can I just ask you one question?",
        "Please take a number and sit down.",
        "I already have a number.",
        "Then wait until they call it.",
        "How long will that take?",
        "About an hour, maybe more.",
        "Fine, I'll wait.",
    ),
    "script02": (
        "Did you remember to call your mother?",
        "I called her this afternoon.",
        "What did she say about the trip?",
        "She wants us to come in June.",
        "June is too early for me.",
        "Then tell her we can come in July.",
        "You tell her, she listens to you.",
        "That's not true at all.",
        "We can talk about it at dinner.",
        "Dinner is almost ready.",
        "I will set the table.",
        "Thank you, that would help.",
    ),
}

IMPRO_LINES: tuple[str, ...] = (
    "I got the job offer today.",
    "They moved the meeting again.",
    "Where did you put the car keys?",
    "The train was late this morning.",
    "My brother is coming to visit.",
    "We lost the game last night.",
    "I can't find my phone anywhere.",
    "She said yes to the proposal.",
    "The rent is going up next month.",
    "Let's go to the beach this weekend.",
    "I think I left the stove on.",
    "He never returned my call.",
    "The weather is lovely today.",
    "I finished the whole project.",
    "They cancelled my flight.",
    "Do you want some coffee?",
    "The dog ran away again.",
    "I passed the final exam.",
    "You promised you would be here.",
    "It's just another ordinary day.",
    "My old friend is getting married.",
    "The store closes at nine.",
    "I have to work late tonight.",
    "We won a trip to the mountains.",
    "The doctor called with the results.",
    "I waited for you for two hours.",
    "Let me check the schedule.",
    "This is the best news all year.",
    "I'm moving to a new city.",
    "Nothing ever works out for me.",
)

UNLABELLED_TEXTS = ("Hmm.", "[LAUGHTER]", "Uh huh.", "[BREATHING] Okay.")

# label -> (category name written by the evaluators, base [valence, activation, dominance])
CATEGORY = {
    "neu": ("Neutral state", (3, 2, 3)),
    "hap": ("Happiness", (4, 3, 3)),
    "exc": ("Excited", (4, 4, 3)),
    "ang": ("Anger", (2, 4, 4)),
    "sad": ("Sadness", (2, 2, 2)),
    "fru": ("Frustration", (2, 3, 3)),
    "sur": ("Surprise", (4, 4, 3)),
}
XXX_CATEGORIES = ("Neutral state", "Frustration", "Anger", "Happiness", "Sadness")
