"""Agents and coordinators."""

from heron.agents.agent import Agent, Coordinator

__all__ = ["Agent", "Coordinator"]
