"""Expanding a campaign for 1M contacts into messages, against a raw INSERT ... SELECT."""

from __future__ import annotations

import time

TITLE = "Campaign expansion of 1M contacts into messages"
CONTACTS = 1_000_000
SLUG = "bench-expand"


def ensure_data():
    """An organization with 1M subscribed contacts, all tagged `all`, and a template."""
    from django.db import connection, transaction

    from accounts.models import Organization
    from contacts.models import Contact, Tag

    org = Organization.objects.filter(slug=SLUG).first()
    if org and Contact.objects.filter(organization=org).count() == CONTACTS:
        return org
    if org:
        # Other benchmarks may have left campaigns and templates here; clear them with SQL.
        with connection.cursor() as cursor:
            for table in (
                "campaigns_message",
                "campaigns_campaignvariant WHERE campaign_id IN "
                "(SELECT id FROM campaigns_campaign WHERE organization_id = %s)",
                "campaigns_campaign",
                "templates_app_templateversion",
                "templates_app_messagetemplate",
                "contacts_contacttag WHERE tag_id IN (SELECT id FROM contacts_tag WHERE organization_id = %s)",
                "contacts_contact",
                "contacts_tag",
            ):
                where = "" if " WHERE " in table else " WHERE organization_id = %s"
                cursor.execute(f"DELETE FROM {table}{where}", [org.pk])
        org.delete()
    with transaction.atomic():
        org = Organization.objects.create(name="Bench expand", slug=SLUG, default_from_email="news@mail.example.com")
        tag = Tag.objects.create(organization=org, name="all")
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO contacts_contact (organization_id, public_id, email, email_domain, first_name, last_name,
                    timezone, locale, attributes, status, consent_source, created_at, updated_at)
                SELECT %s, gen_random_uuid(), 'e' || g || '@example' || (g %% 50) || '.com',
                       'example' || (g %% 50) || '.com', 'First' || g, 'Last', '', '', '{}'::jsonb, 'subscribed',
                       'bench', now(), now()
                FROM generate_series(1, %s) g
                """,
                [org.pk, CONTACTS],
            )
            cursor.execute(
                "INSERT INTO contacts_contacttag (contact_id, tag_id, created_at) "
                "SELECT id, %s, now() FROM contacts_contact WHERE organization_id = %s",
                [tag.pk, org.pk],
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE contacts_contact, contacts_contacttag")
    return org


def make_campaign(org):
    from campaigns.models import Campaign
    from templates_app.services import template_create

    template = template_create(
        organization=org,
        name=f"Bench {time.time_ns()}",
        channel="email",
        subject="Hi {{ contact.first_name }}",
        html_body='<p>Hi {{ contact.first_name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    )
    return Campaign.objects.create(
        organization=org, name="Bench expansion", template=template, audience={"tags": ["all"]}, status="running"
    )


def clear_messages(org) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_message WHERE organization_id = %s", [org.pk])
        cursor.execute("VACUUM ANALYZE campaigns_message")


def run() -> str:
    from django.db import connection

    from campaigns.services import campaign_expand

    started = time.perf_counter()
    org = ensure_data()
    setup = time.perf_counter() - started
    rows = []
    for attempt in range(2):
        clear_messages(org)
        campaign = make_campaign(org)
        started = time.perf_counter()
        expanded = campaign_expand(campaign=campaign)
        ours = time.perf_counter() - started
        assert expanded == CONTACTS, expanded

        clear_messages(org)
        baseline_campaign = make_campaign(org)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO campaigns_message (organization_id, campaign_id, step, contact_id, to_address, status,
                    sending_domain, attempts, last_error, created_at)
                SELECT c.organization_id, %s, 0, c.id, c.email, 0, '', 0, '', now()
                FROM contacts_contact c WHERE c.organization_id = %s
                """,
                [baseline_campaign.pk, org.pk],
            )
            assert cursor.rowcount == CONTACTS
        baseline = time.perf_counter() - started
        rows.append((attempt + 1, ours, baseline))
    clear_messages(org)
    lines = [
        "| run | `campaign_expand` | raw INSERT ... SELECT (baseline) | ratio |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {n} | {ours:.1f} s | {base:.1f} s | {ours / base:.2f}x |" for n, ours, base in rows]
    lines += [
        "",
        f'{CONTACTS:,} subscribed contacts with one tag, audience `{{"tags": ["all"]}}`. `campaign_expand` resolves',
        "the audience (tag EXISTS, status, suppressions by address and domain, exclusion reasons), inserts the",
        "messages with INSERT ... SELECT in chunks of 250,000 contact ids (a plain INSERT for a chunk with no",
        "messages yet, inside a savepoint that falls back to ON CONFLICT DO NOTHING, which a rerun uses), and",
        "counts the exclusions. The baseline inserts the same rows into the same table (same indexes) with one",
        "plain INSERT ... SELECT and no audience logic. Goal: <= 20 s and within 1.5x of the baseline.",
        f"Data setup (when missing): {setup:.0f} s.",
    ]
    return "\n".join(lines)
