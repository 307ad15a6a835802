"""``secmoe trace``: a run's messages, steps and costs as a self-contained HTML page.

``record`` follows a run's algorithms (the functions that cite a spec algorithm and take a
``ctx``) as they call each other, ``sections`` maps a message label to the spec section that
sends it, ``runs`` runs a vector case, the demo layer or the tiny transformer under the
recorder, and ``page`` writes the HTML page with the run's data embedded as JSON.
"""
