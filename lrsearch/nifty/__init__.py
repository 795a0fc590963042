"""The NiftyNet side: the contract with the NiftyNet child (its files, command line, checkpoint
layout), INI configs, path and window rules, the dataset scan and split, console parsing and
Dice.
"""
