// The projections of orders and deployments by role (http::Route::view).
#pragma once

#include <cmath>

#include "cpn/auth/tokens.hpp"
#include "cpn/core/document.hpp"

namespace cpn::api {

void order_view(Json& order, const auth::Principal& who);
void deployment_view(Json& deployment, const auth::Principal& who);
void offering_view(Json& offering, const auth::Principal& who);

}  // namespace cpn::api
