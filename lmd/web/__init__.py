"""`lmd web`: the conversation on one page in the browser (Gradio), over `Conversation`.

`lmd.web.app` needs gradio (the `web` extra); `views`, `boxes`, `folders`, `state` and
`pool` do not.
Gradio's analytics and version check stay off: nothing is sent outside the machine.
"""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gradio at import and launch
