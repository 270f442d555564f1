"""SMART App Launch 2.x, app side (design.md Contract 3; issue 4 items 1, 2 and 5;
standards-checklist.md "SMART app").

``discovery`` finds the EHR's endpoints, ``scopes`` builds and reads scope strings, ``pkce`` and
``client_auth`` make the authorization and token requests safe, ``tokens`` keeps tokens on the
server (encrypted) and refreshes them, ``launch`` holds the views, ``context`` is what the rest of
the app uses (``current_launch``, ``fhir_client``, ``can_read``), and ``security`` sets headers,
cookies and CSRF protection for the whole app.
"""
