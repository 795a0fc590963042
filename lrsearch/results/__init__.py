"""Results for people: the HTML report, the export of a trial, the dashboard server.
"""
