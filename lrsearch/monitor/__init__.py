"""Watching a study: trial records (the one owner of the stored attribute keys), figures, live
dashboard artifacts and terminal progress.
"""
