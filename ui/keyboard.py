"""Keyboard and scroll help on the rate page: a few lines of the app's own JavaScript and CSS.

Streamlit's shortcuts stop while a text box has the focus, and a rerun keeps
the page where it was scrolled. This component (Streamlit components v2: the
app's own code in the page, no iframe, no request anywhere) makes Esc leave a
text box, shows each new item from the top, and gives 0 to "Both bad" where the
scale does not (its 1-4 keys have one shortcut each). It is given no item text,
only the claim's id and that flag.

It also brings the page's style rules (_CSS): no CSS transition or animation on the
rate page, and no fading of stale elements. While a script run lasts over 0.5 s,
as under load, Streamlit fades every element out, expanders and the progress bar
change with transitions, and each is drawn at 60 frames a second, submit after
submit. With runs of 0.7 s (benchmarks/bench_client_cpu.py --run-delay 0.7) the
first rule, on the fades and the progress bar only, took the renderer from 137 to
~120 ms of CPU per submit (211 ms without it); these take it to 94.5 ms and the
GPU process from 18 to 8.5 ms. A run in progress still shows as Streamlit's
running icon at the top of the page, whose frames are script, not CSS.
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

# Every transition and animation of the page (the stale fade, expanders, the progress
# bar's slide, buttons), and the stale fade's end state: the old item stays as it
# was until the next one replaces it.
_CSS = """
*, *::before, *::after {
    transition: none !important;
    animation: none !important;
}
[data-testid='stMain'] [data-stale='true'] {
    opacity: 1 !important;
}
"""

# isolate_styles=False: the rule applies to the page, not only inside the component.
_component = st.components.v2.component("prefstore_rating_keys", js=_JS, css=_CSS,
                                        isolate_styles=False)


def rating_keys(item_id: int, *, zero_is_both_bad: bool) -> None:
    """Mount the keyboard help for the item with claim ``item_id``."""
    _component(key="prefstore_rating_keys",
               data={"item": int(item_id), "zeroIsBothBad": bool(zero_is_both_bad)})
