"""The safety tests reuse the distribution fixtures (local Discord / X / Reddit fakes driven
through discord.py, tweepy and praw; secrets pointing at them)."""

from tests.distribution.conftest import (  # noqa: F401 - fixtures are registered by import
    _discord_shared,
    _reddit_shared,
    _x_shared,
    dfake,
    live_secrets,
    rfake,
    xfake,
)
