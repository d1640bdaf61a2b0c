"""WTForms' select fields, their options rendered the short way.

WTForms renders each ``<option>`` through its general attribute writer (a dict sorted, each value escaped, then
formatted into markup by ``Markup.format``): 40-50 µs an option. The search page's filters have about a hundred
options (an officer's communes and workers, the groups, the stages), which made them a tenth of the page's time.
An option with no extra attributes is written here directly, to the same markup; any other goes WTForms' way.
"""

from __future__ import annotations

import wtforms
from markupsafe import Markup, escape
from wtforms import widgets


class Select(widgets.Select):
    @classmethod
    def render_option(cls, choice, **kwargs):
        if choice.render_kw or kwargs:
            return super().render_option(choice, **kwargs)
        value = choice.value
        if isinstance(value, bool):
            value = str(value)
        selected = "selected " if choice.selected else ""
        label = escape(choice.label or choice.value)
        return Markup(f'<option {selected}value="{escape(value)}">{label}</option>')  # noqa: S704 - both escaped


class SelectField(wtforms.SelectField):
    widget = Select()


class SelectMultipleField(wtforms.SelectMultipleField):
    widget = Select(multiple=True)
