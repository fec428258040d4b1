/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-error.h"

G_DEFINE_QUARK (llm-error-quark, llm_error);
