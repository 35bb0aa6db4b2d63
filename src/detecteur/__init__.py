"""Détecteur: face forensics — authentic or synthetic, how sure, and why."""

__version__ = "0.1.0"
