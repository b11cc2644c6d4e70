"""drop empties the table and ids start again at 1, as pmon3."""

from helpers import Pmond


def test_drop_then_ids_restart_at_one(pmond: Pmond):
    pmond.cli("exec", "/bin/sleep", "--name", "d1", "-a", "300")
    pmond.cli("drop", "-f")
    assert pmond.json("ls") == []
    assert pmond.cli("drop", check=False).stderr.strip() == "there are no processes"
    assert pmond.json("exec", "/bin/sleep", "--name", "fresh", "-a", "300")["id"] == 1
