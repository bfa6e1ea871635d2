"""nginx-kpi: web-traffic KPIs from nginx access logs."""
