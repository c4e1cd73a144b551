"""Tests of the identity package: accounts, login, sessions, permissions, OIDC."""
