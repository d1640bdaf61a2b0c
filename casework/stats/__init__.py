"""Provincial statistics: the indicator catalogue, disclosure control, dashboards and exports."""
