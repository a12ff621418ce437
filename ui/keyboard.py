"""Keyboard and scroll help on the rate page: a few lines of the app's own JavaScript and CSS.

Streamlit's shortcuts stop while a text box has the focus, and a rerun keeps
the page where it was scrolled. This component (Streamlit components v2: the
app's own code in the page, no iframe, no request anywhere) makes Esc leave a
text box, shows each new item from the top, and gives 0 to "Both bad" where the
scale does not (its 1-4 keys have one shortcut each). It is given no item text,
only the claim's id and that flag.

It also brings the page's one style rule (_CSS): while a script run lasts over
0.5 s, as under load, Streamlit fades every element of the page out over 1 s, and
the progress bar slides over 0.5 s. Each is an animation the rater's browser
draws at 60 frames a second, submit after submit: with runs of 0.7 s they took
the renderer from 137 to 211 ms of CPU per submit and the GPU process from 17 to
90 ms (benchmarks/bench_client_cpu.py --run-delay 0.7). The rule keeps the fade's
0.5 s delay and its end state, without the frames in between.
"""

from __future__ import annotations

import streamlit as st

_JS = """
export default function ({ data }) {
    const typing = (el) => el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT"
        || el.isContentEditable);
    window.__prefstoreKeyData = data || {};
    if (window.__prefstoreKeyHandler) {
        document.removeEventListener("keydown", window.__prefstoreKeyHandler, true);
    }
    const onKey = (event) => {
        const el = document.activeElement;
        if (event.key === "Escape" && typing(el)) {
            el.blur();
            return;
        }
        const zero = window.__prefstoreKeyData.zeroIsBothBad;
        if (zero && event.key === "0" && !typing(el) && !event.ctrlKey && !event.metaKey
                && !event.altKey) {
            const buttons = document.querySelectorAll("[data-testid='stMain'] button");
            const bothBad = [...buttons].find((b) => b.innerText.trim().startsWith("Both bad"));
            if (bothBad) {
                event.preventDefault();
                bothBad.click();
            }
        }
    };
    window.__prefstoreKeyHandler = onKey;
    document.addEventListener("keydown", onKey, true);
    if (window.__prefstoreItem !== window.__prefstoreKeyData.item) {
        window.__prefstoreItem = window.__prefstoreKeyData.item;
        window.scrollTo(0, 0);
        for (const el of document.querySelectorAll("[data-testid='stMain'], section, main")) {
            if (el.scrollTop > 0) {
                el.scrollTop = 0;
            }
        }
    }
}
"""

# Element containers and expanders: Streamlit's stale fade; the progress bar's slide.
_CSS = """
[data-testid='stMain'] .stElementContainer, [data-testid='stMain'] details,
[data-testid='stMain'] summary, [data-testid='stMain'] [data-testid='stProgress'] div {
    transition-duration: 0s !important;
}
"""

# isolate_styles=False: the rule applies to the page, not only inside the component.
_component = st.components.v2.component("prefstore_rating_keys", js=_JS, css=_CSS,
                                        isolate_styles=False)


def rating_keys(item_id: int, *, zero_is_both_bad: bool) -> None:
    """Mount the keyboard help for the item with claim ``item_id``."""
    _component(key="prefstore_rating_keys",
               data={"item": int(item_id), "zeroIsBothBad": bool(zero_is_both_bad)})
