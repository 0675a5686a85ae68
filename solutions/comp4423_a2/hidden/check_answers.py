"""Hidden check for Task 3 item 3.1 (the Yes/No answer). Trusted code.

The answer is read from the submission's answers.md (section `## 3.1`, line `Answer: ...`) before any
student code runs; nothing is executed. The handout's answer is No: a NeRF's weights encode one scene.
"""
from __future__ import annotations

import pytest

from grader.answers import yes_no
from grader.checks import CheckFailed, NeedsReview, Student


@pytest.mark.item("3.1", weight=1)
def test_nerf_other_scenes(student: Student) -> None:
    """the Yes/No answer to 'can one NeRF render other scenes?'"""
    text = student.answers.get("3.1")
    report = student.answers.get("report")
    if text is None and report:  # the handout asks for a PDF report: a TA reads what the parser could not
        raise NeedsReview("the report has no section the grader could read as the answer to 3.1",
                          f"report text (start): {report[:600]}")
    if text is None:
        raise CheckFailed("no answer for 3.1 was found",
                          "expected a section headed '## 3.1' in answers.md with a line 'Answer: Yes' or 'Answer: No'",
                          "copy answers.md from the starter, fill it in and put it in your zip")
    said = yes_no(text)
    if said is None and report:
        raise NeedsReview("the answer to 3.1 in the report is not a clear Yes or No", f"answer text: {text[:600]}")
    if said is None:
        raise CheckFailed("the answer to 3.1 is neither a clear Yes nor a clear No",
                          "write exactly one of 'Answer: Yes' or 'Answer: No'")
    if said != "no":
        raise CheckFailed("the answer to 3.1 is not correct", hint="think about what a trained NeRF's weights store")
