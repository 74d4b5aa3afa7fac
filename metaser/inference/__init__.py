"""metaser.inference"""
