"""metaser.experiments"""
