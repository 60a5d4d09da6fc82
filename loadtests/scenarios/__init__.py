"""The Locust scenarios, one locustfile each; ``loadtests.run`` says how each is served."""
