"""The email both sides of the send benchmark send: ~10 KB of table-based HTML, 10 links.

The same source works in Jinja2 (our templates) and in Django's template language
(django-post-office's): only ``{{ dotted.names }}``, ``|urlencode`` and ``{% if %}``.
Plain Python, no imports from either project, so both virtualenvs can use it.
"""

from __future__ import annotations

SUBJECT = "{{ contact.first_name }}, your {{ discount }} off ends {{ deadline }}"
PRODUCTS = 8

# The template's own variables (declared with defaults, as a campaign template must).
VARIABLES = {
    "promo_code": "SPRING26",
    "discount": "20%",
    "deadline": "Sunday",
    "shop_url": "https://shop.example.com",
}


def _product(index: int) -> str:
    link = (
        "{{ shop_url }}/products/"
        + str(index)
        + "?utm_source=newsletter&amp;utm_campaign={{ campaign.name|urlencode }}"
        if index % 2
        else f"https://shop.example.com/collections/item-{index}?ref=mail&amp;pos={index}"
    )
    return f"""
<tr>
  <td class="product" style="padding:16px 24px;border-bottom:1px solid #eeeeee;font-family:Helvetica,Arial,sans-serif;">
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
      <tr>
        <td width="96" valign="top" style="padding-right:16px;">
          <img src="https://cdn.example.com/img/product-{index}.jpg" width="96" height="96" alt="Product {index}"
               style="display:block;border:0;outline:none;border-radius:4px;" />
        </td>
        <td valign="top" style="font-size:15px;line-height:22px;color:#333333;">
          <h3 style="margin:0 0 8px 0;font-size:18px;line-height:24px;color:#111111;">Product number {index}</h3>
          <p style="margin:0 0 12px 0;">Selected for customers in {{{{ contact.attributes.city }}}}: free shipping
          on orders over EUR 50 and a 30-day return policy. Limited stock this week.</p>
          <a href="{link}" style="display:inline-block;padding:10px 18px;background:#0055aa;color:#ffffff;
             text-decoration:none;border-radius:4px;font-weight:bold;">Shop now</a>
        </td>
      </tr>
    </table>
  </td>
</tr>"""


def html_body() -> str:
    products = "".join(_product(index) for index in range(1, PRODUCTS + 1))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{{{ organization.name }}}} newsletter</title>
<style>
  body {{ margin:0; padding:0; background:#f4f4f4; }}
  .wrapper {{ width:100%; background:#f4f4f4; }}
  @media only screen and (max-width: 620px) {{
    .container {{ width:100% !important; }} .product {{ padding:12px !important; }}
  }}
</style>
</head>
<body>
<table role="presentation" class="wrapper" width="100%" cellpadding="0" cellspacing="0" border="0">
<tr><td align="center" style="padding:24px 0;">
<table role="presentation" class="container" width="600" cellpadding="0" cellspacing="0" border="0"
       style="background:#ffffff;border-radius:6px;">
<tr>
  <td style="padding:8px 24px;font-family:Helvetica,Arial,sans-serif;font-size:12px;color:#888888;text-align:right;">
    Trouble reading this email?
    <a href="{{{{ view_in_browser_url }}}}" style="color:#0055aa;">View it in your browser</a>
  </td>
</tr>
<tr>
  <td style="padding:24px;font-family:Helvetica,Arial,sans-serif;">
    <h1 style="margin:0 0 12px 0;font-size:26px;line-height:32px;color:#111111;">
      Hello {{{{ contact.first_name }}}},
    </h1>
    <p style="margin:0;font-size:16px;line-height:24px;color:#333333;">
      {{% if contact.attributes.city %}}In {{{{ contact.attributes.city }}}}{{% else %}}This week{{% endif %}}:
      {{{{ discount }}}} off everything with code <strong>{{{{ promo_code }}}}</strong>, until {{{{ deadline }}}}.
    </p>
  </td>
</tr>{products}
<tr>
  <td style="padding:24px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:22px;color:#333333;">
    <a href="{{{{ shop_url }}}}/account?email={{{{ contact.email|urlencode }}}}" style="color:#0055aa;">Your account</a>
  </td>
</tr>
<tr>
  <td style="padding:16px 24px;font-family:Helvetica,Arial,sans-serif;font-size:12px;line-height:18px;color:#888888;">
    You receive this email from {{{{ organization.name }}}} because you subscribed with {{{{ contact.email }}}}.
    <a href="{{{{ unsubscribe_url }}}}" style="color:#888888;">Unsubscribe</a>.
  </td>
</tr>
</table>
</td></tr>
</table>
</body>
</html>
"""


def text_body() -> str:
    """The text alternative, for the peer (our side derives it from the HTML)."""
    products = "\n".join(
        f"Product number {index}: {{{{ shop_url }}}}/products/{index}" for index in range(1, PRODUCTS + 1)
    )
    return (
        "Hello {{ contact.first_name }},\n\n"
        "{{ discount }} off everything with code {{ promo_code }}, until {{ deadline }}.\n\n"
        f"{products}\n\n"
        "View in your browser: {{ view_in_browser_url }}\n"
        "Unsubscribe: {{ unsubscribe_url }}\n"
    )


def recipient(index: int) -> dict:
    """The contact with number `index` (1-based), the same on both sides."""
    return {
        "email": f"e{index}@example{index % 50}.com",
        "first_name": f"First{index}",
        "last_name": "Last",
        "city": ("Utrecht", "Amsterdam", "Rotterdam", "Delft", "Leiden")[index % 5],
    }
