"""Files written so that a reader never sees a partial one."""

import json

from siamese.atomic_files import write_json_atomic


def test_json_is_written_atomically(tmp_path) -> None:
    write_json_atomic(tmp_path / "m.json", {"b": 1.5, "a": [1, 2]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1, 2], "b": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_files_get_the_usual_permissions(tmp_path) -> None:
    import os
    import stat

    write_json_atomic(tmp_path / "m.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~mask
