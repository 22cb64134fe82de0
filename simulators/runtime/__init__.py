"""Where actors live outside the test process: container images, compose files, Docker.

* :mod:`.images` builds the pacsim and Orthanc images (offline-capable: wheelhouse + a
  local debootstrap base);
* :mod:`.topology` turns a scenario's ``environment`` into container services, once,
  for both :mod:`.compose` (a compose file) and :mod:`.docker` (the docker SDK runtime);
* :mod:`.probes` and :mod:`.health` answer "is this actor up?" the protocol's way
  (C-ECHO, an MLLP round trip, HTTP), inside the image and from the host alike;
* :mod:`.commands` adds ``pacsim images|compose|up|status|logs|down`` to the CLI;
* :mod:`.control` (served by ``pacsim serve --control-port``), :mod:`.operations` (its
  per-kind allowlist), :mod:`.wire` (typed JSON) and :mod:`.remote` (proxies with the
  actors' own methods) let ``pacsim run --runtime docker`` drive actors in containers
  with unchanged steps; :mod:`.remote_site` fills a scenario site with those proxies.

Nothing here is imported by the actors: an actor does not know its runtime.
"""
