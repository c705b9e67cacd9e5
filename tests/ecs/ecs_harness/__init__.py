"""Test harness of the ECS backend: a moto server on 127.0.0.1 that can be told to fail,
and an agent that plays the part of ECS for the tasks moto records."""
