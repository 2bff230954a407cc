"""``{% money amount currency %}``: minor units formatted by revenue_site.money."""

from django import template

from revenue_site.money import format_money

register = template.Library()


@register.simple_tag
def money(amount: int, currency: str) -> str:
    return format_money(int(amount), currency)
