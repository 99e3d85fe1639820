import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_audit_events"),
    ]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="message_price_currency",
            field=models.CharField(
                default="EUR",
                help_text="ISO 4217 currency of the SMS and WhatsApp prices.",
                max_length=3,
                validators=[
                    django.core.validators.RegexValidator("^[A-Z]{3}\\Z", "Use a three-letter ISO 4217 code, e.g. EUR.")
                ],
            ),
        ),
        migrations.AddField(
            model_name="organization",
            name="require_explicit_consent",
            field=models.BooleanField(
                default=False,
                help_text="SMS and WhatsApp only to contacts who said yes to the channel "
                "(off: no answer follows status).",
                verbose_name="require explicit SMS/WhatsApp consent",
            ),
        ),
        migrations.AddField(
            model_name="organization",
            name="sms_segment_price",
            field=models.DecimalField(
                blank=True,
                decimal_places=5,
                help_text="What one SMS segment costs; gives campaign cost estimates. Empty: unknown.",
                max_digits=10,
                null=True,
                validators=[django.core.validators.MinValueValidator(0)],
            ),
        ),
        migrations.AddField(
            model_name="organization",
            name="whatsapp_message_price",
            field=models.DecimalField(
                blank=True,
                decimal_places=5,
                help_text="What one WhatsApp template message costs. Empty: unknown.",
                max_digits=10,
                null=True,
                validators=[django.core.validators.MinValueValidator(0)],
            ),
        ),
    ]
