"""casework's select widget writes the very markup WTForms' own does, faster, and escapes as it does."""

from __future__ import annotations

import pytest
import wtforms
from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectChoice

from casework import widgets

HOSTILE = '"><script>alert(1)</script>'
CHOICES = [
    SelectChoice("", "— tất cả —"),
    SelectChoice("06970", "Xã Kỳ Sơn"),
    SelectChoice(HOSTILE, f"nhãn {HOSTILE} & 'x'"),
    SelectChoice("x", ""),  # an empty label shows the value, as WTForms does
    SelectChoice(None, "None"),
    SelectChoice(True, "có"),
]


def pair(field_type, fast_type, **options):
    """The same form twice: with WTForms' field, and with casework's."""

    class Theirs(wtforms.Form):
        f = field_type(choices=CHOICES, validate_choice=False, **options)

    class Ours(wtforms.Form):
        f = fast_type(choices=CHOICES, validate_choice=False, **options)

    return Theirs, Ours


@pytest.mark.parametrize("chosen", [[], ["06970"], [HOSTILE], ["x"], ["True"]])
def test_a_select_renders_exactly_as_wtforms_does(app, chosen):
    theirs, ours = pair(wtforms.SelectField, widgets.SelectField)
    data = MultiDict([("f", value) for value in chosen])
    with app.test_request_context():
        expected, got = str(theirs(data).f()), str(ours(data).f())
    assert got == expected
    assert "<script>" not in got and "&#34;&gt;&lt;script&gt;" in got
    if chosen:
        assert got.count("selected") == 1


def test_a_multiple_select_and_one_with_extra_attributes_render_as_wtforms_does(app):
    theirs, ours = pair(wtforms.SelectMultipleField, widgets.SelectMultipleField)
    data = MultiDict([("f", "06970"), ("f", "x")])
    with app.test_request_context():
        assert str(ours(data).f(class_="wide")) == str(theirs(data).f(class_="wide"))
        assert str(ours(data).f()).count("selected") == 2

    extra = [SelectChoice("a", "A", render_kw={"disabled": True}), SelectChoice("b", "B")]
    groups = [SelectChoice("a", "A", optgroup="Nhóm 1"), SelectChoice("b", "B", optgroup="Nhóm 2")]

    class Theirs(wtforms.Form):
        f = wtforms.SelectField(choices=extra)

    class Ours(wtforms.Form):
        f = widgets.SelectField(choices=extra)

    class TheirGroups(wtforms.Form):
        f = wtforms.SelectField(choices=groups)

    class OurGroups(wtforms.Form):
        f = widgets.SelectField(choices=groups)

    with app.test_request_context():
        assert str(Ours().f()) == str(Theirs().f()) and "disabled" in str(Ours().f())
        assert str(OurGroups().f()) == str(TheirGroups().f()) and "<optgroup" in str(OurGroups().f())
