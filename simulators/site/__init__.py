"""The site layer: the environment model and a running :class:`~simulators.site.site.Site`.

Above the actors (it starts them) and below every engine (scenarios, the sandbox,
the container runtimes and the pytest plugin all run a site).
"""
