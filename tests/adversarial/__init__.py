"""An adversarial corpus for comp4423_a2: malicious or broken submissions and what each must get.

Each case is a zip (its members, or raw bytes for malformed zips) with the outcome the grader must
give it: the status, the marks of the five built items (2.1, 4.1, 4.2, 5.1, 5.2) and a phrase of
the reason a TA reads. Attacks usually keep the reference for two modules and attack the third,
so the test also proves that untouched items keep their marks.

`build(ctx)` returns the cases for one batch; `ctx` carries what an attack aims at (the repo, the
output folder, other students' boxes, a listener's port, a marker for leftover processes).
"""
from .cases import BUILT, FULL, Case, Context, build  # noqa: F401
