"""Trusted oracles shared by hidden checks of several assignments (never shipped to students): written
from the formulas, in float64 numpy, independent of any reference solution's code."""
