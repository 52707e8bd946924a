"""Load: realistic request parameters, Locust runs in a subprocess, and the p95 gate."""
