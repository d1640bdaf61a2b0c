"""Support payments: programmes and budgets, requests with receipts, the approval policy, decisions, disbursement."""
