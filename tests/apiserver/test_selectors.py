import pytest

from couchestor.sim.apiserver.errors import ApiError
from couchestor.sim.apiserver.fieldsel import matches, object_fields, parse_field_selector


def test_field_selector_operators_and_escapes():
    sel = parse_field_selector(r"metadata.name=a\,b,metadata.namespace!=kube-system", ())
    assert matches(sel, {"metadata.name": "a,b", "metadata.namespace": "default"})
    assert not matches(sel, {"metadata.name": "a,b", "metadata.namespace": "kube-system"})
    assert matches(parse_field_selector("metadata.name==x", ()), {"metadata.name": "x"})
    assert parse_field_selector("", ()) == ()


def test_unsupported_field_is_400_in_the_words_of_kube_apiserver_1_28():
    with pytest.raises(ApiError) as info:
        parse_field_selector("spec.storageClassName=x", ())
    assert info.value.code == 400
    assert info.value.message == (
        '"spec.storageClassName" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
    # A kind with field labels of its own answers through its converter.
    with pytest.raises(ApiError) as info:
        parse_field_selector("spec.x=y", ("type",))
    assert info.value.message == "field label not supported: spec.x"


def test_resource_specific_fields():
    sel = parse_field_selector("involvedObject.name=pv-1,type=Warning", ("involvedObject.name", "type"))
    fields = object_fields(
        {"involvedObject": {"name": "pv-1"}, "type": "Warning"}, ("involvedObject.name", "type")
    )
    assert matches(sel, fields)


def test_malformed_field_selector_is_400():
    with pytest.raises(ApiError) as info:
        parse_field_selector("metadata.name", ())
    assert info.value.code == 400
