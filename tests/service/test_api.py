import siamese


def test_every_public_name_resolves() -> None:
    for name in siamese.__all__:
        assert getattr(siamese, name) is not None
    assert issubclass(siamese.ConfigError, siamese.SiameseError)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        siamese.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("expected AttributeError")
