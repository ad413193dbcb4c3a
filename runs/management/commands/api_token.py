"""``manage.py api_token <username> <name>``: create a personal API token and print it once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.tokens import TokenError, api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user; the token is printed once and stored only as a hash."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the user the token acts as (with their role)")
        parser.add_argument("name", help="what will use the token, e.g. 'CI pipeline'")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"There is no user {options['username']!r}.")
        if not user.is_active:
            raise CommandError(f"User {options['username']!r} is inactive.")
        try:
            new = api_token_create(user=user, name=options["name"])
        except TokenError as exc:
            raise CommandError(str(exc)) from exc
        # The token alone on stdout so scripts can capture it: TOKEN=$(manage.py api_token ...).
        self.stdout.write(new.plaintext)
        self.stderr.write(
            f"Token {new.token.name!r} (pw_{new.token.prefix}_…) for {user.get_username()}; "
            "it is not shown again."
        )
