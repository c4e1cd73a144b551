"""Staff identity: accounts and Takan's own two-factor login, sessions, permissions, OIDC.

Clauses 5.4 (unified login, pluggable provider), 9.3.3 (own login: unique identity, two
combined factors, credential complexity) and 9.4 (real-name accounts; query, entry, review
and approve permissions) of DB3714/T 0014-2023.

Modules: :mod:`~identity.passwords` (argon2id, complexity), :mod:`~identity.totp`
(RFC 6238), :mod:`~identity.accounts` (accounts, login, lockout), :mod:`~identity.sessions`
(staff web sessions), :mod:`~identity.permissions` (roles, permissions, principals) and
:mod:`~identity.oidc` (OpenID Connect login).
"""

from .accounts import BAD_CREDENTIALS, Account, Accounts
from .oidc import Claims, IdentityProvider, LoginRequest, OidcProvider, account_for
from .passwords import DEFAULT_PARAMETERS, HashParameters, Passwords, check_complexity
from .permissions import PERMISSIONS, ROLE_PERMISSIONS, ROLES, Principal, permissions_for
from .sessions import EXPIRED, Session, StaffSessions

__all__ = [
    "BAD_CREDENTIALS",
    "DEFAULT_PARAMETERS",
    "EXPIRED",
    "PERMISSIONS",
    "ROLES",
    "ROLE_PERMISSIONS",
    "Account",
    "Accounts",
    "Claims",
    "HashParameters",
    "IdentityProvider",
    "LoginRequest",
    "OidcProvider",
    "Passwords",
    "Principal",
    "Session",
    "StaffSessions",
    "account_for",
    "check_complexity",
    "permissions_for",
]
