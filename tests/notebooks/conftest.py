"""After each reference notebook's cells, one more item: its key numbers against the reference's.

nbval compares printed text exactly, so the checked cells print only what holds on every CPU; the
numbers behind the results are compared here within the tolerances of ``inc_utils.keynumbers``
(the policy and the measured variation behind it: README.md in this folder). The re-executed
chapter writes ``$INC_BUILD_DIR/numbers/<chapter>.json`` (the test session's build folder, see
``tests/conftest.py``); the reference is ``<chapter>.numbers.json`` beside the notebook, copied by
``tests/make_references.py``.
"""
import os
from pathlib import Path

import pytest

from inc_utils import keynumbers


class KeyNumbers(pytest.Item):
    """The key numbers of the chapter whose cells ran just before."""

    def runtest(self):
        chapter = self.path.stem
        reference = self.path.with_name(f"{chapter}.numbers.json")
        fresh = keynumbers.path_for(os.environ["INC_BUILD_DIR"], chapter)
        if not reference.exists() and not fresh.exists():
            pytest.skip(f"{chapter} records no key numbers")
        if not reference.exists():
            raise AssertionError(f"{fresh} has no reference {reference.name}: run `make references`")
        if not fresh.exists():
            raise AssertionError(f"{chapter} recorded no key numbers ({fresh}); the reference has {reference.name}")
        lines = keynumbers.differences(keynumbers.read(reference), keynumbers.read(fresh))
        assert not lines, f"{chapter}: key numbers differ from {reference.name}:\n" + "\n".join(lines)

    def repr_failure(self, excinfo):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::key numbers"


def pytest_collection_modifyitems(session, config, items):
    """Insert a ``KeyNumbers`` item right after the last cell of every reference notebook."""
    last = {}
    for index, item in enumerate(items):
        if type(item).__name__ == "IPyNbCell" and Path(item.path).parent == Path(__file__).parent:
            last[item.parent] = index
    for notebook, index in sorted(last.items(), key=lambda pair: -pair[1]):
        items.insert(index + 1, KeyNumbers.from_parent(notebook, name="key numbers"))
