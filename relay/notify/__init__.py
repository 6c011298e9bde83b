"""Telling other systems what happened: event webhooks over the event log."""
