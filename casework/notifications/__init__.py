"""Notifications: deadline reminders and alerts in each user's inbox, and the deadline check that sends them."""
