// The Android layer: Activities and Views only; every decision is made by :core (pure Java).
// Inference runs through TFLite's Interpreter Java API taken from LCE's AAR, which registers
// LCE's custom ops (LceBconv2d, LceQuantize, ...). See ../README.md.
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.kbnn.demo"
    compileSdk = 34

    defaultConfig {
        applicationId = "org.kbnn.demo"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            // LCE's optimized binary kernels are for 64-bit ARM; add "x86_64" to run on an
            // emulator (LCE then falls back to its slow reference kernels).
            abiFilters += "arm64-v8a"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }

    androidResources {
        noCompress += "tflite" // flatbuffers are read as they are stored
    }
}

// LCE's AAR: app/libs/lce-lite.aar, or org.larq:lce-lite:<version> from Maven local when
// -Plce.maven.version=<version> (or the line in gradle.properties) is set. It already contains
// TFLite's Java API: do not add org.tensorflow:tensorflow-lite as well (duplicate classes).
val lceAar = file("libs/lce-lite.aar")
val lceMavenVersion: String? = providers.gradleProperty("lce.maven.version").orNull

dependencies {
    implementation(project(":core"))
    if (lceMavenVersion != null) {
        implementation("org.larq:lce-lite:$lceMavenVersion@aar")
    } else {
        implementation(files(lceAar))
    }
}

// Fail early, with the fix, instead of a missing-class or missing-asset error at run time.
val checkDemoInputs by tasks.registering {
    val assets = layout.projectDirectory.file("src/main/assets/model.json").asFile
    val aar = lceAar
    val fromMaven = lceMavenVersion != null
    doLast {
        if (!fromMaven && !aar.exists()) {
            throw GradleException(
                "LCE's AAR is missing: build it with larq_compute_engine/tflite/java/build_lce_aar.sh " +
                    "and copy it to $aar (android_demo/README.md, \"The LCE AAR\")."
            )
        }
        if (!assets.exists()) {
            throw GradleException(
                "No model assets: run `kbnn export-android` from the kbnn repository root " +
                    "(writes $assets and the .tflite files)."
            )
        }
    }
}
tasks.named("preBuild") { dependsOn(checkDemoInputs) }
