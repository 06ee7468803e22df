"""Pure-Python HFS+ / HFSX volume writer and reader (TN1150)."""
