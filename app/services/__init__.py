"""Orchestration between the HTTP layer and the domain packages. No FastAPI, no Ray imports here.

Services take a ``Session`` and flush; whoever opened the session (request or task) commits.
"""
