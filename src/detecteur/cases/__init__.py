"""Cases: a durable record of every check (SQLite by default, PostgreSQL for a team), with reviewer decisions."""

from detecteur.cases.models import CaseDetail, CaseLink, CasePage, CaseSummary, CaseUpdate, Decision, SeenBefore
from detecteur.cases.queries import CaseFilter
from detecteur.cases.store import CaseStore, NewCase, StoreError

__all__ = [
    "CaseDetail",
    "CaseFilter",
    "CaseLink",
    "CasePage",
    "CaseStore",
    "CaseSummary",
    "CaseUpdate",
    "Decision",
    "NewCase",
    "SeenBefore",
    "StoreError",
]
