"""Step types, one module per family. Importing a module registers its steps.

Which modules load is listed in :data:`simulators.scenario.registry.STEP_MODULES`;
``generic`` holds the steps that need no actor (wait, parallel, note, assert.vars).
Actor steps (hl7.*, mwl.*, modality.*, target.*) go in their own modules here and are
appended to ``STEP_MODULES``.
"""
