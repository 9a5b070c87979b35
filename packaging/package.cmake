# The Debian package (scripts/package runs cpack): vppd as a systemd service.
#
#   /usr/bin/vppd                      the binary (apple-vpp-sim is a test tool: not packaged)
#   /lib/systemd/system/vppd.service   runs `vppd serve --config /etc/vppd/vppd.toml` as user vppd
#   /etc/vppd/vppd.toml                the configuration (a conffile: an upgrade keeps local edits)
#   /usr/share/doc/vppd/               README.md, packaging/README.md (install, upgrade, backup, restore)
#   /usr/share/vppd/prometheus/        vppd-alerts.yml, Prometheus alert rules
# The maintainer scripts (packaging/debian/) create the system user vppd and
# /var/lib/vppd (0700, its data dir), and leave both in place on purge: the data dir
# holds the store and the key its sTokens are sealed with.
# `cpack` installs what is listed here, without building everything first (scripts/package builds vppd).
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
install(TARGETS vppd RUNTIME DESTINATION bin COMPONENT vppd)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/vppd.service DESTINATION /lib/systemd/system COMPONENT vppd)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/vppd.toml DESTINATION /etc/vppd COMPONENT vppd)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/vppd COMPONENT vppd)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/README.md DESTINATION share/doc/vppd RENAME README.packaging.md
        COMPONENT vppd)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/vppd-alerts.yml DESTINATION share/vppd/prometheus COMPONENT vppd)

set(CPACK_GENERATOR DEB)
set(CPACK_COMPONENTS_ALL vppd)
set(CPACK_DEB_COMPONENT_INSTALL OFF)
set(CPACK_PACKAGE_NAME vppd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Microsoft Graph's Intune vppTokens API, self-hosted, syncing Apple VPP licences")
set(CPACK_PACKAGE_CONTACT "vppd maintainers <vppd@localhost>")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # vppd_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # Depends: from the libraries the binary links
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")  # useradd, in postinst
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
