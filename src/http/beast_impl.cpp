// Asio and Beast compiled once (BOOST_*_SEPARATE_COMPILATION): every other
// translation unit only includes their headers.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
