"""guard.records: tuple classes with named fields, made without collections (guard's start-up)."""

import pickle

import pytest

from guard.records import record

Point = record("Point", "x y z", defaults=(0,))


class Named(record("Named", "key name")):
    __slots__ = ()

    def __new__(cls, key, name=""):
        return super().__new__(cls, key, name or key.upper())


def test_fields_are_read_by_name_and_by_position_as_a_tuple():
    p = Point(1, 2, 3)
    assert (p.x, p.y, p.z) == (1, 2, 3) and p == (1, 2, 3) and tuple(p) == (1, 2, 3)
    x, y, z = p
    assert (x, y, z) == (1, 2, 3) and p[1] == 2 and len(p) == 3
    assert Point._fields == ("x", "y", "z")


def test_keywords_and_defaults_fill_what_positions_leave():
    assert Point(1, 2) == (1, 2, 0)
    assert Point(y=2, x=1, z=5) == (1, 2, 5)
    assert Point(1, z=9, y=8) == (1, 8, 9)


@pytest.mark.parametrize("args,kwargs,said", [
    ((1,), {}, "missing required argument 'y'"),
    ((1, 2, 3, 4), {}, "takes 3 arguments but 4 were given"),
    ((1, 2), {"x": 3}, "multiple values for argument 'x'"),
    ((1, 2), {"w": 3}, "unexpected keyword argument 'w'"),
])
def test_wrong_arguments_are_type_errors_naming_them(args, kwargs, said):
    with pytest.raises(TypeError, match=said):
        Point(*args, **kwargs)


def test_replace_copies_with_changes_and_refuses_unknown_fields():
    p = Point(1, 2, 3)
    assert p._replace(y=7) == (1, 7, 3) and type(p._replace(y=7)) is Point and p == (1, 2, 3)
    with pytest.raises(ValueError, match="unexpected field names"):
        p._replace(w=1)


def test_a_record_is_immutable_hashable_and_has_no_instance_dict():
    p = Point(1, 2, 3)
    with pytest.raises(AttributeError):
        p.x = 5
    with pytest.raises(AttributeError):
        p.other = 5
    assert hash(p) == hash((1, 2, 3)) and not hasattr(p, "__dict__")


def test_repr_asdict_and_pickle():
    p = Point(1, "a", None)
    assert repr(p) == "Point(x=1, y='a', z=None)"
    assert p._asdict() == {"x": 1, "y": "a", "z": None}
    assert Point.__module__ == __name__
    assert pickle.loads(pickle.dumps(p)) == p


def test_a_subclass_keeps_its_own_new_and_replace_keeps_the_subclass():
    n = Named("vm")
    assert n == ("vm", "VM") and n.name == "VM"
    assert type(n._replace(name="x")) is Named and n._replace(name="x").name == "x"


def test_field_names_may_be_a_sequence():
    assert record("R", ["a", "b"], defaults=(1,))(0) == (0, 1)
