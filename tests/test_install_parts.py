"""guard install DIR: what it replaces in DIR, on real folders (a crafted bundle stands in for
/opt/guard: the copy itself is the same whatever the files hold)."""

import os

import pytest

from guard import install


def crafted_bundle(root):
    """A folder laid out as the bundle is: bin/guard, libexec/guard, lib/ with guard's package."""
    for relative in ("bin/guard", "libexec/guard", "lib/libc.so.6",
                     "lib/python3.11/site-packages/guard/__init__.pyc"):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"new {relative}\n")
    return str(root)


def test_a_previous_copy_is_replaced(tmp_path):
    bundle, target = crafted_bundle(tmp_path / "bundle"), tmp_path / "target"
    crafted_bundle(target)
    (target / "lib" / "libold.so").write_text("from the previous copy\n")
    assert install._unfit_target(str(target), bundle) is None
    install.copy(bundle, str(target))
    assert sorted(os.listdir(target)) == ["bin", "lib", "libexec"]
    assert not (target / "lib" / "libold.so").exists()
    assert (target / "bin" / "guard").read_text() == "new bin/guard\n"


@pytest.mark.parametrize("part,holds", [
    ("lib", "data/customers.db"),  # a volume's lib/ of something else
    ("bin", "backup.sh"),
    ("libexec", "helper"),
])
def test_a_folder_named_like_a_part_but_not_guards_is_left_alone(tmp_path, part, holds):
    bundle, target = crafted_bundle(tmp_path / "bundle"), tmp_path / "target"
    precious = target / part / holds
    precious.parent.mkdir(parents=True)
    precious.write_text("not guard's\n")
    problem = install._unfit_target(str(target), bundle)
    assert problem is not None and f"[{part}]" in problem
    assert precious.read_text() == "not guard's\n"


def test_a_symlink_named_like_a_part_is_left_alone(tmp_path):
    bundle, target = crafted_bundle(tmp_path / "bundle"), tmp_path / "target"
    target.mkdir()
    (target / "lib").symlink_to(tmp_path / "elsewhere")
    assert "[lib]" in install._unfit_target(str(target), bundle)
