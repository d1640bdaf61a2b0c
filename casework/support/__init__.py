"""Support for a child once the case is open: assessments, emergency measures, plans, services, monitoring, closure."""
