"""JUnit XML from a result's `junit_cases()`: each gate or check is one testcase (pytest's junitxml shape)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from nnprobe.results import JUnitCase


def render_junit(cases: Sequence[JUnitCase], suite: str) -> str:
    failures = sum(c.status == "failed" for c in cases)
    skipped = sum(c.status == "skipped" for c in cases)
    root = ET.Element("testsuites")
    element = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures),
                            errors="0", skipped=str(skipped))
    for case in cases:
        node = ET.SubElement(element, "testcase", classname=case.classname, name=case.name)
        if case.status == "failed":
            failure = ET.SubElement(node, "failure", message=case.message)
            failure.text = case.details or case.message
        elif case.status == "skipped":
            ET.SubElement(node, "skipped", message=case.message)
        elif case.message:
            out = ET.SubElement(node, "system-out")
            out.text = case.message
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
