"""metaser.training"""
