// Asio and Beast compiled once (BOOST_*_SEPARATE_COMPILATION): every other
// translation unit only includes their headers.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>  // the kubernetes driver's HTTPS client
#include <boost/beast/src.hpp>
