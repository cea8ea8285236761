// kbnn Android demo: a BNN digit classifier on Larq Compute Engine (LCE).
// Open this folder (android_demo/) in Android Studio; see README.md for the LCE AAR and the
// model assets, which are not in the repository.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
        // Only for -Plce.maven.version=...: an lce-lite AAR installed with `mvn install:install-file`.
        mavenLocal {
            content { includeGroup("org.larq") }
        }
    }
}

rootProject.name = "kbnn-android-demo"
include(":core", ":app")
