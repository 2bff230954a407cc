"""Staff console: program performance (clicks → referrals → conversions → revenue →
commissions per program, for a date range). Mounted at /admin/affiliates/performance/."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from affiliates import selectors
from revenue_site.money import format_money


class PerformanceFilterForm(forms.Form):
    date_from = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data


@staff_member_required
def program_performance(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    initial = {"date_from": today - timedelta(days=29), "date_to": today}
    form = PerformanceFilterForm(request.GET or initial)
    rows = []
    if form.is_valid():
        for perf in selectors.program_performance(
            date_from=form.cleaned_data["date_from"], date_to=form.cleaned_data["date_to"]
        ):
            currencies = sorted(set(perf.revenue) | set(perf.commissions))
            rows.append(
                {
                    "perf": perf,
                    "conversion_rate": (
                        f"{perf.conversions * 100 / perf.clicks:.2f}%" if perf.clicks else "—"
                    ),
                    "money": [
                        (
                            c.upper(),
                            format_money(perf.revenue.get(c, 0), c),
                            format_money(perf.commissions.get(c, 0), c),
                        )
                        for c in currencies
                    ],
                }
            )
    context = {
        **admin.site.each_context(request),
        "title": "Program performance",
        "form": form,
        "rows": rows,
    }
    return TemplateResponse(request, "affiliates/admin/program_performance.html", context)
