"""The nightly report's sections, one module each; every one returns a :class:`Section`.

A missing input gives a "no data yet: <why>" note in its place, never made-up figures.
"""
